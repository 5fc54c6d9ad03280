"""Privacy at the source: calibrated discrete noise on exact integer aggregates.

The node computes each aggregate exactly in the data source -- counts, histograms
and fixed-point sums of clamped values, as integers -- and this package turns them
into a differentially private release (DESIGN D4; REFERENCES c.1-c.5):

* ``plan_release`` decides, without data, which integer vectors a query releases,
  splits the budget evenly over them and gives each its noise scale and 95%
  half-width (this is also the dry run); ``release`` adds the noise;
* ``noisy_integers`` draws discrete Gaussian (zCDP rho) or discrete Laplace (pure
  epsilon) noise from OpenDP's samplers, calibrated against OpenDP's own map;
* ``FixedPoint`` and the ``*_sensitivity`` functions give integer bounds and
  sensitivities under add/remove-one-person with ``c`` rows per person;
* ``epsilon_at``, ``rho_for_epsilon``, ``split_budget`` do the accounting in rho;
* ``half_width``, ``integer_interval``, ``mean_interval``, ``variance_interval`` give
  intervals, also for partials summed across nodes (the recipe is in
  ``node.privacy._intervals``);
* ``suppress`` applies the minimum group size to noisy counts.

Everything is pure apart from the sampler call in ``noisy_integers`` (and
``release``). Bad arguments raise ``ValueError`` or ``TypeError`` with the field named;
the node maps them to its own errors.
"""

from node.privacy._accounting import epsilon_at as epsilon_at
from node.privacy._accounting import epsilon_at_classic as epsilon_at_classic
from node.privacy._accounting import rho_for_epsilon as rho_for_epsilon
from node.privacy._accounting import split_budget as split_budget
from node.privacy._fixedpoint import FixedPoint as FixedPoint
from node.privacy._intervals import Interval as Interval
from node.privacy._intervals import combined_variance as combined_variance
from node.privacy._intervals import gaussian_sum_half_width as gaussian_sum_half_width
from node.privacy._intervals import half_width as half_width
from node.privacy._intervals import integer_interval as integer_interval
from node.privacy._intervals import mean_interval as mean_interval
from node.privacy._intervals import sum_coverage as sum_coverage
from node.privacy._intervals import variance_interval as variance_interval
from node.privacy._mechanisms import Release as Release
from node.privacy._mechanisms import gaussian_scale as gaussian_scale
from node.privacy._mechanisms import laplace_scale as laplace_scale
from node.privacy._mechanisms import noisy_integers as noisy_integers
from node.privacy._mechanisms import opendp_measurement as opendp_measurement
from node.privacy._noise import DISCRETE_GAUSSIAN as DISCRETE_GAUSSIAN
from node.privacy._noise import DISCRETE_LAPLACE as DISCRETE_LAPLACE
from node.privacy._noise import Mechanism as Mechanism
from node.privacy._noise import Noise as Noise
from node.privacy._plan import Aggregate as Aggregate
from node.privacy._plan import Count as Count
from node.privacy._plan import Histogram as Histogram
from node.privacy._plan import Mean as Mean
from node.privacy._plan import PlannedVector as PlannedVector
from node.privacy._plan import Quantile as Quantile
from node.privacy._plan import ReleasePlan as ReleasePlan
from node.privacy._plan import Sum as Sum
from node.privacy._plan import Variance as Variance
from node.privacy._plan import cached_plan_release as cached_plan_release
from node.privacy._plan import plan_release as plan_release
from node.privacy._plan import release as release
from node.privacy._sensitivity import Sensitivity as Sensitivity
from node.privacy._sensitivity import count_sensitivity as count_sensitivity
from node.privacy._sensitivity import histogram_sensitivity as histogram_sensitivity
from node.privacy._sensitivity import (
    sum_of_squares_sensitivity as sum_of_squares_sensitivity,
)
from node.privacy._sensitivity import sum_sensitivity as sum_sensitivity
from node.privacy._suppression import at_risk_below as at_risk_below
from node.privacy._suppression import suppress as suppress

__all__ = [
    "DISCRETE_GAUSSIAN",
    "DISCRETE_LAPLACE",
    "Aggregate",
    "Count",
    "FixedPoint",
    "Histogram",
    "Interval",
    "Mean",
    "Mechanism",
    "Noise",
    "PlannedVector",
    "Quantile",
    "Release",
    "ReleasePlan",
    "Sensitivity",
    "Sum",
    "Variance",
    "at_risk_below",
    "cached_plan_release",
    "combined_variance",
    "count_sensitivity",
    "epsilon_at",
    "epsilon_at_classic",
    "gaussian_scale",
    "gaussian_sum_half_width",
    "half_width",
    "histogram_sensitivity",
    "integer_interval",
    "laplace_scale",
    "mean_interval",
    "noisy_integers",
    "opendp_measurement",
    "plan_release",
    "release",
    "rho_for_epsilon",
    "split_budget",
    "sum_coverage",
    "sum_of_squares_sensitivity",
    "sum_sensitivity",
    "suppress",
    "variance_interval",
]
