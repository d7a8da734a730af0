"""The engine on several AXI4 ports: the image's planes, the configuration's rule, the ports'
members. (The engine's RTL on several ports runs in cocotb in tests/sim/test_engine_ports.py
and under the PYNQ driver in tests/boards/test_engine_board.py.)"""

import numpy as np
import pytest

from hwgen.engine import EngineConfig
from hwgen.engine.core import Engine
from hwgen.engine.layout import PLANE_ALIGN, ImagePlanes
from hwgen.engine.ports import Planes, port_names


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("ports", [1, 2, 4])
def test_planes_hold_the_image_lane_by_lane(image, ports):
    planes = ImagePlanes(ports, 64, len(image))
    buffer = np.frombuffer(planes.planes(image), dtype=np.uint8)
    assert planes.read(buffer.copy(), 0, len(image)) == image
    if ports == 1:
        assert buffer.tobytes() == image
        return
    lane = 64 // ports
    assert planes.plane_bytes % PLANE_ALIGN == 0
    assert planes.plane_bytes >= -(-len(image) // 64) * lane
    words = -(-len(image) // 64)
    padded = np.frombuffer(image + bytes(words * 64 - len(image)), dtype=np.uint8)
    for k in range(ports):
        plane = buffer[k * planes.plane_bytes:k * planes.plane_bytes + words * lane]
        assert np.array_equal(plane.reshape(words, lane),
                              padded.reshape(words, ports, lane)[:, k]), k


@pytest.mark.parametrize("ports", [1, 2, 4])
def test_writes_land_where_reads_find_them(image, ports):
    """A write at any offset, across words and lanes, changes those bytes and no others."""
    planes = ImagePlanes(ports, 64, len(image))
    buffer = bytearray(planes.planes(image))
    planes.write(buffer, 130, b"across a lane and a word: " * 3)
    want = bytearray(image)
    want[130:130 + 78] = b"across a lane and a word: " * 3
    assert planes.read(buffer, 0, len(image)) == bytes(want)
    assert planes.read(buffer, 150, 7) == bytes(want[150:157])


def test_bytes_outside_the_image_or_a_buffer_of_another_size_are_refused(image):
    planes = ImagePlanes(4, 64, len(image))
    with pytest.raises(ValueError, match="bytes 9990..10010 are not inside the image of "
                                         "10000 bytes"):
        planes.read(bytearray(planes.nbytes), 9990, 20)
    with pytest.raises(ValueError, match=f"the image's planes take {planes.nbytes} bytes, "
                                         f"not 10000"):
        planes.write(bytearray(len(image)), 0, b"x")


@pytest.mark.parametrize("fields, message", [
    ({"ports": 3}, "engine ports must be one of 1, 2, 4 with lanes of at least 32 bits "
                   r"\(data_bits / ports\), not 3 on a 64-bit bus"),
    ({"ports": 4, "data_bits": 64}, "not 4 on a 64-bit bus"),
    ({"ports": "2"}, "not '2'"),
    ({"ports": True}, "not True"),
])
def test_port_counts_the_engine_cannot_have_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**fields)


def test_the_configuration_carries_its_ports():
    config = EngineConfig(data_bits=512, ports=4)
    assert config.port_bits == 128
    assert EngineConfig.from_dict(config.as_dict()) == config
    assert EngineConfig.from_dict({k: v for k, v in config.as_dict().items()
                                   if k != "ports"}).ports == 1


def test_an_engine_has_one_master_per_port():
    engine = Engine(EngineConfig(tm=4, tn=4, data_bits=256, ports=4))
    members = engine.signature.members
    assert port_names(4) == ["m_axi0", "m_axi1", "m_axi2", "m_axi3"]
    assert "m_axi" not in members
    for name in port_names(4):
        assert members[name].signature.data_bits == 64
    assert Engine(EngineConfig(tm=4, tn=4)).signature.members["m_axi"].signature.data_bits == 64


@pytest.mark.parametrize("ports, data_bits", [(1, 128), (3, 128), (4, 64)])
def test_planes_need_two_or_more_ports_of_32_bits(ports, data_bits):
    with pytest.raises(ValueError, match="ports must be a power of two of at least 2"):
        Planes(addr_bits=32, data_bits=data_bits, ports=ports)


def test_config_word_and_plane_register_follow_the_ports():
    """CONFIG carries the ports (less one) above the bus bytes, so a driver refuses a
    bitstream of another port count; only an engine of several ports has PLANE."""
    from hwgen.engine.control import REGISTERS, Control, config_word

    assert config_word(EngineConfig(tm=16, tn=16, data_bits=512, ports=4)) == \
        16 | 16 << 8 | 64 << 16 | 3 << 24
    assert config_word(EngineConfig(tm=16, tn=16, data_bits=512)) == 16 | 16 << 8 | 64 << 16
    assert REGISTERS["PLANE"] == 0x2C
    assert "plane" not in Control(config_word=0).signature.members
    assert "plane" in Control(config_word=0, ports=2).signature.members
