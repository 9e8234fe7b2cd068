"""The kept Search answers: within their byte budget, oldest dropped first."""

from napshare.tracker.answers import ENTRY_OVERHEAD, Answer, Answers


def answer(size, generation=1):
    return Answer(generation, b"r" * size, None, "x")


def test_the_oldest_answers_go_first_when_the_budget_is_full():
    one = 1 + 100 + ENTRY_OVERHEAD  # what a one-byte request with a 100-byte answer costs
    answers = Answers(budget=one * 64)
    for n in range(70):
        answers.put(bytes([n]), answer(100))

    assert len(answers) == 64
    assert answers.get(bytes([5])) is None
    assert answers.get(bytes([6])) == answer(100)
    assert answers.get(bytes([69])) == answer(100)


def test_replacing_an_answer_frees_the_old_one():
    one = 1 + 100 + ENTRY_OVERHEAD
    answers = Answers(budget=one * 64)
    for generation in range(500):
        answers.put(b"a", answer(100, generation))
    answers.put(b"b", answer(100))

    assert answers.get(b"a") == answer(100, 499)
    assert len(answers) == 2


def test_an_answer_bigger_than_a_64th_of_the_budget_is_not_kept():
    answers = Answers(budget=64 * 1000)
    answers.put(b"small", answer(10))
    answers.put(b"big", answer(1000))

    assert answers.get(b"big") is None
    assert answers.get(b"small") == answer(10)
