"""The native CPU executor's inverse normal CDF polynomials, low order first, each in a variable centred on its
``*_MID``: the fit the kernels used until their paths were rebuilt around ``kernels/ndtri_coeffs.py`` (this
file's numbers came from the ``kernels/fit_ndtri.py`` of that time and are frozen here).

The stream format fixes exact values and a tolerance, not an evaluation: the C code (``csrc/stream_v1.c``)
evaluates these in its own vectorized form, and ``tests/test_native.py`` proves the result within the contract
over every value u(w) can take. CENTRAL serves calls whose every min(p, q) has w = -ln(4 m (1 - m)) below
``CENTRAL_W_LIMIT``; WIDE those whose every min(p, q) stays at or above ``WIDE_P_MIN``; float64 the rest.
"""

CENTRAL_W_LIMIT = 4.99
WIDE_P_MIN = 1.0e-8

# variable in [0, 5], max relative error in fp32 2.46e-06
CENTRAL_MID = 2.5
CENTRAL = (1.5014104843139648, 0.24664966762065887, -0.004179839044809341, -0.001265301601961255, 0.000218856061110273, -6.570189157173445e-07, -3.347542360643274e-06)

# variable in [2.23607, 4.47214], max relative error in fp32 3.96e-07
TAIL_NEAR_MID = 3.3541018962860107
TAIL_NEAR = (3.188588857650757, 1.0062611103057861, 0.004356571938842535, -0.002829350298270583, 0.0016864980570971966, -0.0013029532274231315, 0.0008379454375244677, -0.00018700846703723073, -3.998469765065238e-05)

# variable in [4.47214, 10], max relative error in fp32 1.67e-07
TAIL_FAR_MID = 7.236067771911621
TAIL_FAR = (7.107088565826416, 1.0083551406860352, -0.0005065469304099679, 1.0896196727117058e-05, 4.518448349699611e-06, -1.1033022246920154e-06, 1.9891569991159486e-07, -6.073869229794582e-08, 1.0565516461724656e-08)

# variable in [0, 17.5], max relative error in fp32 1.19e-06
WIDE_MID = 8.75
WIDE = (2.7909650802612305, 0.16917000710964203, -0.004536253400146961, 0.00021845221635885537, -9.2499303718796e-06, -1.1501787611223335e-07, 4.447062806889335e-08, -4.5704950935032684e-09, 2.269775478680458e-09, -2.9981220284192034e-10, -1.1905777579090948e-11, 3.1984332717061026e-12, -2.595999705755662e-15, -9.591363178673967e-15)

TAIL_SPLIT = 4.4721360206604
WIDE_W_LIMIT = 17.5
