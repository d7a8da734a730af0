"""The values of the command line, checked before any work starts.

Each function takes an option's text as the user wrote it and returns the value the library
takes, or raises :class:`ValueError` (or :class:`FileNotFoundError`) with one line that names
the option, the rule and the value.
"""

import json
import math
import re

import numpy as np

from hwgen.engine import EngineConfig
from quant.numerics import is_int
from sim.cluster import check_address, check_workers
from sim.runner import check_backpressure

__all__ = ["ENGINE_FORM", "check_design_fits", "check_distribution", "check_number",
           "load_inputs", "parse_backpressure", "parse_engine", "parse_folding", "read_design"]

#: What ``--engine`` takes.
ENGINE_FORM = ("KEY=VALUE[,KEY=VALUE...] of tm, tn, lane_bits (widths joined by '/', as "
               "4/4/4/8), act_bits, acc_bits, data_bits, addr_bits, input_words, "
               "output_words, weight_words, channels, family")

_FOLDING_FORM = "NAME=PExSIMD[,NAME=PExSIMD...] or a JSON file {\"NAME\": [PE, SIMD]}"
_FOLDING_ITEM = re.compile(r"\s*([^=\s]+)\s*=\s*([+-]?\d+)\s*[xX]\s*([+-]?\d+)\s*")
#: The first bytes of a .npy file and of a .npz archive (a zip file).
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK"


def check_number(option, value, *, low=0.0, high=math.inf, integer=False, low_open=True):
    """``value`` if it is finite and in ``(low, high]`` (``[low, high]`` when not
    ``low_open``), else :class:`ValueError` naming ``option``."""
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        kind = "an integer" if integer else "a finite number"
        bound = f"{'>' if low_open else '>='} {low:g}"
        if high != math.inf:
            bound += f" and <= {high:g}"
        raise ValueError(f"{option} must be {kind} {bound}, not {value:g}")
    return value


def parse_backpressure(text):
    """``--backpressure``: a stall probability in [0, 1) or a pattern (``bursty:H,L``,
    ``stall:S,N``)."""
    try:
        value = float(text)
    except ValueError:
        value = text
    try:
        return check_backpressure(value)
    except ValueError as error:
        raise ValueError(f"--backpressure: {error}") from None


def check_distribution(workers, cluster, shards):
    """``--workers``, ``--cluster`` and ``--shards``: a positive worker count or a scheduler
    address (not both), and a positive shard count only with one of them."""
    if workers is not None and cluster is not None:
        raise ValueError("--cluster runs the shards on that cluster's workers; leave out "
                         "--workers")
    if workers is not None:
        check_workers(workers, "--workers")
    if cluster is not None:
        check_address(cluster, "--cluster")
    if shards is not None:
        if workers is None and cluster is None:
            raise ValueError("--shards needs --workers or --cluster")
        check_workers(shards, "--shards")


def _pe_simd(where, value):
    """``(pe, simd)`` from ``[pe, simd]``: two positive integers."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(not is_int(v) or v < 1 for v in value)):
        raise ValueError(f"{where} must be [PE, SIMD], two positive integers, not "
                         f"{json.dumps(value)}")
    return tuple(value)


def _folding_file(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"--folding file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"--folding file {path} must be JSON, {{\"NAME\": [PE, SIMD]}}, "
                         f"not unreadable ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"--folding file {path} must hold a JSON object "
                         f"{{\"NAME\": [PE, SIMD]}}, not a {type(spec).__name__}")
    return {name: _pe_simd(f"--folding file {path}: layer '{name}'", value)
            for name, value in spec.items()}


def parse_folding(text):
    """``--folding``: ``fc1=16x4,fc2=8x1`` or a JSON file into ``{name: (pe, simd)}``."""
    if text is None:
        return None
    if text.endswith(".json"):
        return _folding_file(text)
    folding = {}
    for item in text.split(","):
        match = _FOLDING_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"--folding must look like {_FOLDING_FORM}, not {text!r}")
        name, pe, simd = match.groups()
        if name in folding:
            raise ValueError(f"--folding must name each layer once, not {name!r} twice")
        folding[name] = _pe_simd(f"--folding {name}", [int(pe), int(simd)])
    return folding


def parse_engine(text):
    """``--engine``: ``tm=16,tn=16,data_bits=128`` into an :class:`EngineConfig` (the keys
    left out keep their defaults)."""
    if text is None:
        return EngineConfig()
    fields = {}
    names = set(EngineConfig.__dataclass_fields__)
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not value:
            raise ValueError(f"--engine must look like {ENGINE_FORM}, not {text!r}")
        if key not in names:
            raise ValueError(f"--engine has no key {key!r}; the keys are "
                             f"{', '.join(sorted(names))}")
        if key in fields:
            raise ValueError(f"--engine must give {key} once, not twice")
        if key == "family":
            fields[key] = value
            continue
        try:
            numbers = [int(v) for v in value.split("/")]
        except ValueError:
            raise ValueError(f"--engine {key} must be an integer"
                             f"{' or widths joined by /' if key == 'lane_bits' else ''}, "
                             f"not {value!r}") from None
        fields[key] = tuple(numbers) if key == "lane_bits" else numbers[0]
        if key != "lane_bits" and len(numbers) != 1:
            raise ValueError(f"--engine {key} must be one integer, not {value!r}")
    try:
        return EngineConfig(**fields)
    except ValueError as error:
        raise ValueError(f"--engine: {error}") from None


def load_inputs(path):
    """``--inputs``: the integer array of a ``.npy`` file (``numpy.save``)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise FileNotFoundError(f"inputs file {path} does not exist") from None
    if magic.startswith(_ZIP_MAGIC):
        raise ValueError(f"--inputs must be a .npy file of one array (numpy.save), not the "
                         f".npz or zip archive {path}")
    if magic != _NPY_MAGIC:
        raise ValueError(f"--inputs must be a .npy file of one array (numpy.save), not "
                         f"{path}, which does not start like one")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a valid .npy file ({e})") from None
    if not data.size or data.ndim == 0:
        raise ValueError(f"{path} holds no inputs")
    return data


def _design_field(path, report, key, kind, what):
    value = report.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{path}: {key} must be {what}, not {json.dumps(value)[:60]}")
    return value


def read_design(path):
    """``--design``: an estimate report of ``hwgen estimate``.

    Returns
    -------
    dict
        ``folding``, ``lut_lanes``, ``rom_styles`` (build options), ``device`` (the
        multiplier family), ``part`` (the part it was estimated for) and ``total`` (its
        estimated resources, ``{"lut", "ff", "dsp", "bram18", "lutram"}``).
    """
    try:
        with open(path) as f:
            report = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"design report {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a JSON estimate report ({e})") from None
    missing = [k for k in ("folding", "lut_lanes", "rom_styles", "device", "total")
               if not isinstance(report, dict) or k not in report]
    if missing:
        raise ValueError(f"{path} is not an estimate report of `hwgen estimate`: it has "
                         f"no {', '.join(missing)}")
    folding = _design_field(path, report, "folding", dict, "an object of [PE, SIMD]")
    lut_lanes = _design_field(path, report, "lut_lanes", dict, "an object")
    rom_styles = _design_field(path, report, "rom_styles", dict, "an object")
    device = _design_field(path, report, "device", dict, "an object")
    total = _design_field(path, report, "total", dict, "an object")
    if not all(isinstance(total.get(k), (int, float)) for k in _RESOURCE_NAMES):
        raise ValueError(f"{path}: total must give {', '.join(_RESOURCE_NAMES)} as numbers, "
                         f"not {json.dumps(total)[:60]}")
    if not isinstance(device.get("family"), str) or not isinstance(device.get("name"), str):
        raise ValueError(f"{path}: device must name its family and part, not "
                         f"{json.dumps(device)[:60]}")
    try:
        lanes = {k: {int(b): int(n) for b, n in v.items()} for k, v in lut_lanes.items()}
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{path}: lut_lanes must map layers to {{bits: lanes}}, not "
                         f"{json.dumps(lut_lanes)[:60]}") from None
    return {"folding": {k: _pe_simd(f"{path}: folding of '{k}'", v)
                        for k, v in folding.items()},
            "lut_lanes": lanes, "rom_styles": dict(rom_styles), "device": device["family"],
            "part": device["name"], "total": total}


_RESOURCE_NAMES = {"lut": "LUTs", "ff": "flip-flops", "dsp": "DSPs", "bram18": "BRAM18s",
                   "lutram": "LUT RAM LUTs"}


def check_design_fits(design, board):
    """Raise :class:`ValueError` when the ``--design`` estimate needs more of a resource
    than ``board``'s part has, before any synthesis runs."""
    if board.device is None:
        return
    capacity = board.device.capacity()
    over = [f"{_RESOURCE_NAMES[k]} {design['total'][k]:,} > {capacity[k]:,}"
            for k in capacity if design["total"].get(k, 0) > capacity[k]]
    if over:
        raise ValueError(f"--design (estimated for {design['part']}) needs more than board "
                         f"{board.name}'s part {board.device.name} has: {', '.join(over)}; "
                         f"estimate for the board: hwgen estimate MODEL --device {board.name}")
