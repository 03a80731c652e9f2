"""The public surface is pinned: changing it is a deliberate act."""

import importlib

import pytest

import reference
import verify


def test_reference_public_names():
    assert sorted(reference.__all__) == sorted([
        "BACKENDS", "BERNOULLI", "CATEGORICAL", "REGISTRY", "Answers", "BinaryQuadratic", "Cost",
        "Distribution", "Estimator", "JitObjective", "NoiseSpec", "Queries", "TableObjective",
        "binary_quadratic", "categorical_toy", "estimator_names", "evaluate", "get_distribution",
        "get_estimator", "objectives", "random_table"])
    for name in reference.__all__:
        assert hasattr(reference, name)


def test_verify_public_names():
    assert sorted(verify.__all__) == sorted([
        "CheckResult", "Moments", "PortReport", "Problem", "SamplerReport", "assert_mc",
        "assert_samples", "backend_port", "check_port", "check_sampler", "check_samples",
        "config_probabilities", "exact_expectation",
        "exact_gradient", "finite_difference_gradient", "make_problem", "mc_check", "score_matrix"])
    for name in verify.__all__:
        assert hasattr(verify, name)


def test_registry_names_start_with_score_function_family():
    assert {"reinforce", "reinforce_loo"} <= set(reference.REGISTRY)


#: module -> its public names (``__all__``); scripts and users import from these
PUBLIC_MODULES = {
    "reference.contract": [
        "Answers", "BACKENDS", "Backend", "Cost", "Estimator", "NoiseSpec", "Queries",
        "backend_paths", "evaluate"
    ],
    "reference.distributions": [
        "BERNOULLI", "CATEGORICAL", "Distribution", "KSUBSET", "get_distribution", "log_sigmoid",
        "log_softmax", "sigmoid", "softmax"
    ],
    "reference.objectives": [
        "BinaryQuadratic", "JIT_OBJECTIVE_SIG", "JitObjective", "Objective", "RowQuadratic",
        "SubsetQuadratic", "TableObjective", "binary_quadratic", "categorical_toy",
        "evaluate_all_jit", "random_table"
    ],
    "reference.ksubset": [
        "check_k", "covariance", "enumerate_subsets", "forward_table", "gumbel", "log_partition",
        "marginals", "sample", "score", "subset_log_probs", "sum_of_gamma_noise", "top_k"
    ],
    "reference.estimators.score_function": [
        "REINFORCE", "REINFORCE_LOO"
    ],
    "reference.estimators.augment_reinforce": [
        "AR", "ARM", "DISARM"
    ],
    "reference.estimators.swap": [
        "ARS", "ARSM", "ARSM_PLUS", "ARSM_PLUS_CE", "ARS_PLUS"
    ],
    "reference.estimators.relaxation": [
        "AIMLE", "GUMBEL_SOFTMAX", "IMLE", "STRAIGHT_THROUGH", "ST_GUMBEL_SOFTMAX"
    ],
    "reference.estimators.ksubset_perturbation": [
        "AIMLE_KSUBSET", "IMLE_KSUBSET", "SIMPLE"
    ],
    "reference.estimators.st_variants": [
        "GST", "GUMBEL_RAO", "REINMAX"
    ],
    "reference.estimators.st_variants.numpy_reference": [
        "GST", "GUMBEL_RAO", "REINMAX", "TINY", "conditional_perturbed", "gap_flags", "gr_gradients",
        "gst_logits", "onehot", "reinmax_gradients"
    ],
    "reference.estimators.control_variates": [
        "DOUBLE_CV", "MUPROP", "NVIL", "NVILState", "nvil_update"
    ],
    "reference.estimators.relaxation.numpy_reference": [
        "AIMLE", "AIMLEState", "GUMBEL_SOFTMAX", "IMLE", "STRAIGHT_THROUGH", "ST_GUMBEL_SOFTMAX",
        "aimle_update", "imle_flags", "onehot", "onehot_argmax", "perturbation_gradients", "relaxed_sample",
        "softmax_jvp"
    ],
    "reference.estimators.ksubset_perturbation.numpy_reference": [
        "AIMLE_KSUBSET", "IMLE_KSUBSET", "SIMPLE", "aimle_nonzeros", "ksubset_noise",
        "ksubset_per_sample", "perturbed_scores"
    ],
    "reference.estimators.control_variates.numpy_reference": [
        "DOUBLE_CV", "MUPROP", "NVIL", "NVILState", "mean_jvp", "nvil_scale", "nvil_update"
    ],
    "reference.estimators.rebar": [
        "QuadraticSurrogate", "REBAR", "RELAX"
    ],
    "reference.estimators.rebar.numpy_reference": [
        "QuadraticSurrogate", "REBAR", "RELAX", "TINY", "loglog", "rebar_combine_categorical",
        "rebar_points", "rebar_points_categorical", "surrogate_answers"
    ],
    "reference.estimators.multi_sample": [
        "CARMS", "REINFORCE_WOR", "UNORD", "VIMCO"
    ],
    "reference.estimators.multi_sample.numpy_reference": [
        "CARMS", "CARMS_MAX_N", "MAX_JOINT", "MAX_N", "MAX_SETS", "REINFORCE_WOR", "UNORD",
        "VIMCO", "all_subsets", "carms_copula_uniforms", "carms_order", "carms_order_index",
        "carms_pair_law", "carms_ratio", "carms_sample", "carms_survival", "carms_weights",
        "category_log_probs", "gumbel_top", "inclusion_log_probs", "joint_log_probs",
        "logit_table", "n_categories", "subset_log_probs", "unord_weights", "vimco_signals"
    ],
    "reference.models": [
        "BatchStream", "CpuOps", "DATA_ENV", "NumpyOps", "VAE", "VAESpec", "binarize",
        "binary_spec", "categorical_spec", "get_ops", "init_params", "load_binarized_mnist",
        "load_dataset", "load_mnist_idx", "read_idx", "resolve_data_dir"
    ],
    "reference.models.controls": [
        "Adam", "Control", "LEARNED", "NVILControl", "REBARControl", "RELAXControl",
        "VAESurrogate", "make_control", "variance_objective"
    ],
    "verify.exact": [
        "MAX_CONFIGURATIONS", "MAX_MEMORY_BYTES", "MAX_SECONDS", "OPERATIONS_PER_SECOND",
        "PYTHON_STEP", "Problem", "check_budget", "check_enumeration_budget",
        "check_enumeration_size", "conditional_means",
        "config_probabilities", "configurations", "exact_expectation", "exact_expectation_mp",
        "exact_gradient", "exact_gradient_mp", "expectation_gradient", "finite_difference_gradient",
        "ksubset_expectation",
        "ksubset_gradient", "ksubset_probabilities", "make_problem", "mp_configurations",
        "mp_mean_cov", "score_matrix"
    ],
    "verify.moments": [
        "Moments"
    ],
    "verify.adapters": [],
    "verify.moments.score_function": [
        "reinforce_loo_moments", "reinforce_loo_moments_mp", "reinforce_moments",
        "reinforce_moments_mp"
    ],
    "verify.moments.augment_reinforce": [
        "BinaryCells", "MAX_GENERAL_K", "ar_moments", "arm_moments", "binary_cells",
        "binary_moments", "binary_moments_mp", "disarm_moments", "separable_terms"
    ],
    "verify.moments.swap": [
        "ars_moments", "ars_plus_moments", "arsm_moments", "arsm_plus_ce_moments",
        "arsm_plus_moments", "clear_caches", "dimension_tables", "swap_moments"
    ],
    "verify.moments.relaxation": [
        "cached_moments", "check_rqmc_budget", "grad_at", "gumbel_softmax_moments", "imle_moments",
        "imle_moments_mp",
        "moments_from_values", "rqmc_moments", "st_gumbel_softmax_moments",
        "straight_through_moments", "straight_through_moments_mp"
    ],
    "verify.moments.ksubset_perturbation": [
        "ksubset_perturb_moments", "simple_moments", "simple_moments_mp"
    ],
    "verify.moments.st_variants": [
        "gst_moments", "gst_moments_mp", "gumbel_rao_conditional", "gumbel_rao_moments",
        "reinmax_moments", "reinmax_moments_mp"
    ],
    "verify.moments.control_variates": [
        "double_cv_moments", "double_cv_moments_mp", "muprop_moments", "muprop_moments_mp",
        "nvil_moments", "nvil_moments_mp", "u_statistic_moments"
    ],
    "verify.moments.rebar": [
        "gap_near_probability", "mixture_fraction", "rebar_moments", "rebar_values",
        "rebar_values_categorical", "rebar_values_categorical_z", "rebar_values_z", "relax_moments"
    ],
    "verify.moments.races": [
        "BATCH_ENTRIES", "race_pair_moments", "race_pair_tables",
        "race_pair_tables_mp", "swap_coefficients"
    ],
    "verify.moments.races_sym": ["delta_event", "event_moments", "sym_pair_tables"],
    "verify.moments.swap_mp": ["race_moments_mp"],
    "verify.moments.multi_sample": [
        "CARMS_MP_MAX_TUPLES", "MAX_TERMS", "carms_code_moments", "carms_code_ratio",
        "carms_moments", "carms_moments_mp", "carms_moments_tuples", "carms_table",
        "carms_tuple_law", "multisets",
        "reinforce_wor_moments", "subsets", "unord_moments", "vimco_moments",
        "vimco_target_gradient", "vimco_target_value"
    ],
    "verify.moments.quadrature": [
        "LAW_ERROR", "argmax_joint_law", "argmax_joint_law_quad", "argmax_joint_prob",
        "rqmc_mean_cov"
    ],
    "verify.moments.polytope": [
        "Cell", "SIDE_EPS", "Splitter", "cell_moments", "cells_moments", "cuts", "ordered_cell",
        "probability_bound", "refine", "side_eps", "sides", "simplex_cell", "split"
    ],
    "verify.moments.polytope_fast": ["refine_cells", "refine_starts"],
    "verify.port": [
        "LEVELS", "PortReport", "STATEFUL", "StateRule", "assert_mc", "backend_port",
        "check_port", "default_rtol", "mc_check", "repro_source"
    ],
    "verify.stats": [
        "CheckResult", "assert_samples", "check_samples", "direction_label", "replicates_for_bias"
    ],
    "verify.sampler": [
        "SamplerReport", "check_sampler", "exact_law"
    ],
    "verify.noise": [
        "FEEDS", "TINY", "bernoulli_samples", "categorical_samples", "dirichlet", "exponential",
        "feed", "ksubset_samples", "logistic", "logistic_pair", "standard_gumbel", "sum_of_gamma"
    ],
    "verify.golden": [
        "golden_entries", "main", "write_golden"
    ],
    "verify.strategies": [
        "logit_values", "logits", "objective_tables", "problems", "quadratic_objectives",
        "sample_sizes", "st"
    ],
    "verify.problems": [
        "TOY_TS", "builtin_problems"
    ],
    "verify.report": [
        "main", "report_rows"
    ],
    "verify.parallel": [
        "ResultStore", "Unit", "iter_units", "run_units", "unit_seed"
    ],
}

REGISTRY_NAMES = [
    "reinforce", "reinforce_loo", "ar", "arm", "disarm", "ars", "arsm", "ars_plus", "arsm_plus",
    "arsm_plus_ce", "straight_through", "gumbel_softmax", "st_gumbel_softmax", "imle", "aimle",
    "imle_ksubset", "aimle_ksubset", "simple", "gumbel_rao", "gst", "reinmax",
    "nvil", "muprop", "double_cv", "rebar", "relax", "vimco", "unord",
    "reinforce_wor", "carms"
]


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_module_public_names(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC_MODULES[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_registry_names_and_order():
    # the report's rows follow this order
    assert list(reference.REGISTRY) == REGISTRY_NAMES
    assert reference.estimator_names() == REGISTRY_NAMES
