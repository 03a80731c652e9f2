"""The public surface is pinned: changing it is a deliberate act."""

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
        "CheckResult", "Moments", "PortReport", "Problem", "assert_mc", "assert_samples",
        "backend_port", "check_port", "check_samples", "config_probabilities", "exact_expectation",
        "exact_gradient", "finite_difference_gradient", "make_problem", "mc_check", "score_matrix"])
    for name in verify.__all__:
        assert hasattr(verify, name)


def test_registry_names_start_with_score_function_family():
    assert {"reinforce", "reinforce_loo"} <= set(reference.REGISTRY)
