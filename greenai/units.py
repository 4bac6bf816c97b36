"""Unit constants. SI inside greenai; kWh appears only at the accounting/report edge."""

J_PER_KWH = 3.6e6
FLOP_PER_TFLOP = 1e12
