"""The stream formats of an accelerator's ports, as the self-test, the AXI top and the driver
pack them."""

from quant.stream_format import StreamFormat

__all__ = ["formats"]


def formats(accelerator):
    """``(input format, output format)``: how ``accelerator``'s streams carry its tensors.

    The one place the boards read an accelerator's stream formats: element order
    (``in_order``/``out_order``), elements per beat and element types.

    Parameters
    ----------
    accelerator : hwgen.Accelerator

    Returns
    -------
    tuple of quant.stream_format.StreamFormat
    """
    graph = accelerator.graph
    spec = graph.input
    in_format = StreamFormat(spec.shape, spec.bits, spec.signed, accelerator.in_elements,
                             order=accelerator.in_order)
    out_format = StreamFormat(graph.shapes()[graph.output], accelerator.out_bits,
                              accelerator.out_signed, accelerator.out_elements,
                              order=accelerator.out_order)
    return in_format, out_format
