import pytest

from drawloop.graphs.stopping import StopRule


def test_continues_while_improving():
    rule = StopRule(max_iters=10, patience=2, min_delta=0.01)
    assert rule.evaluate([0.1, 0.2, 0.3]) == (2, None)


def test_patience_counts_attempts_without_improvement():
    rule = StopRule(max_iters=10, patience=2, min_delta=0.01)
    assert rule.evaluate([0.5, 0.4]) == (0, None)
    assert rule.evaluate([0.5, 0.4, 0.45]) == (0, "patience")


def test_gain_below_min_delta_is_not_improvement_but_can_be_best():
    rule = StopRule(max_iters=10, patience=2, min_delta=0.05)
    best, reason = rule.evaluate([0.50, 0.52, 0.53])
    assert best == 2 and reason == "patience"


def test_small_gains_accumulate_against_last_real_improvement():
    rule = StopRule(max_iters=10, patience=3, min_delta=0.05)
    # 0.56 is 0.06 above 0.50 (the last counted improvement), so it resets patience
    assert rule.evaluate([0.50, 0.53, 0.56]) == (2, None)


def test_ties_keep_the_earliest_best_and_do_not_count_as_improvement():
    rule = StopRule(max_iters=10, patience=2, min_delta=0.0)
    assert rule.evaluate([0.3, 0.7, 0.7]) == (1, None)
    assert rule.evaluate([0.3, 0.7, 0.7, 0.7]) == (1, "patience")


def test_max_iters_is_a_hard_cap():
    rule = StopRule(max_iters=3, patience=5)
    assert rule.evaluate([0.1, 0.2, 0.3]) == (2, "max_iters")
    assert StopRule(max_iters=1).evaluate([0.0]) == (0, "max_iters")


def test_target_stops_as_soon_as_reached():
    rule = StopRule(max_iters=10, patience=5, target=0.8)
    assert rule.evaluate([0.2, 0.85]) == (1, "target")
    assert rule.evaluate([0.2, 0.79]) == (1, None)


def test_target_wins_over_max_iters_when_both_hold():
    assert StopRule(max_iters=2, target=0.5).evaluate([0.1, 0.9]) == (1, "target")


def test_model_failing_after_consecutive_draw_failures():
    rule = StopRule(max_iters=10, patience=10, max_failures=3)
    assert rule.evaluate([0, 0, 0], [True, True, True]) == (0, "model_failing")
    assert rule.evaluate([0.5, 0, 0], [False, True, True]) == (0, None)


def test_empty_scores():
    assert StopRule().evaluate([]) == (None, None)


@pytest.mark.parametrize("scores", [[0.0], [0.0, 0.0], [1.0, 1.0, 1.0]])
def test_best_is_earliest_max(scores):
    assert StopRule(max_iters=10, patience=10).best_index(scores) == 0
