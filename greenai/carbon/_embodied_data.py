"""Published manufacturing (embodied) CO2e figures of AI hardware, each with its source.

Only figures we could trace to a publication are listed, and each says whether it is a
product carbon footprint (PCF) of that exact product or a class estimate standing in for a
family. Manufacturers rarely publish per-accelerator PCFs: NVIDIA's PCF summaries cover
whole 8-GPU HGX boards (HGX H100, HGX B200); enter such a figure yourself as an
:class:`~greenai.carbon.embodied.EmbodiedFactor` with its document as the source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbodiedFactor:
    """Manufacturing CO2e of one device, with where the figure comes from.

    Attributes:
        key: Short name (``"datacenter-gpu"``).
        description: What one unit is.
        kg_co2e: Cradle-to-gate CO2e of one unit, kg.
        source: The publication the figure is from.
        class_estimate: True when the figure stands in for a family of products rather
            than being the PCF of this exact product.
        note: What the figure covers or leaves out.
    """

    key: str
    description: str
    kg_co2e: float
    source: str
    class_estimate: bool
    note: str = ""


LUCCIONI_2023 = (
    "Luccioni, Viguier & Ligozat, 'Estimating the Carbon Footprint of BLOOM, a 176B "
    "Parameter Language Model', JMLR 24(253), 2023 (arXiv:2211.02001), section on embodied "
    "emissions"
)
CHIEN_2023 = (
    "Chien et al., 'Reducing the Carbon Impact of Generative AI Inference (today and in "
    "2035)', HotCarbon '23, ACM, doi:10.1145/3604930.3605705 (E_hw = 318 kgCO2 per GPU)"
)

FACTORS: dict[str, EmbodiedFactor] = {
    "datacenter-gpu": EmbodiedFactor(
        key="datacenter-gpu",
        description="one data-centre GPU (A100-class), the GPU alone",
        kg_co2e=150.0,
        source=LUCCIONI_2023,
        class_estimate=True,
        note="an estimate for an A100 in the absence of a manufacturer LCA; used here for "
        "any data-centre GPU (H100, MI300X, ... are larger and likely higher)",
    ),
    "gpu-server-host": EmbodiedFactor(
        key="gpu-server-host",
        description="one GPU server without its GPUs (CPUs, memory, storage, chassis)",
        kg_co2e=2500.0,
        source=LUCCIONI_2023,
        class_estimate=True,
        note="estimated for an HPE Apollo 6500 Gen10 Plus node; share it among the GPUs "
        "of the node (pass device-hours × 1/GPUs per node)",
    ),
    "a100-with-host-share": EmbodiedFactor(
        key="a100-with-host-share",
        description="one A100 GPU with 1/8 of its cloud instance (CPU, DRAM, SSD, packaging)",
        kg_co2e=318.0,
        source=CHIEN_2023,
        class_estimate=True,
        note="modelled per GPU of an 8×A100 cloud instance from die areas and component "
        "reports, not a PCF; counts CO2 as the paper does",
    ),
}
"""Built-in figures by key; :func:`~greenai.carbon.embodied.factor_for_device` picks one."""
