from newsletter.ranking import Candidate, Interests, rank
from newsletter.reasons import FEATURED, Kind, Reason

ROBOTICS, SECURITY = 1, 2
NAMES = {ROBOTICS: "Robotics", SECURITY: "Security"}


def paper(id, upvotes=0, day=10, topics=(), text=""):
    return Candidate(id=id, title=f"Paper {id}", text=text or f"paper {id}", upvotes=upvotes, listed_ordinal=day,
                     topic_ids=frozenset(topics))


def run(candidates, interests=Interests(), featured=(), exclude=(), limit=10):
    return rank(candidates=candidates, featured=list(featured), interests=interests, exclude=set(exclude),
                topic_names=NAMES, limit=limit)


def test_featured_papers_come_first_then_matches_then_trending_fill():
    candidates = [paper(1, 500), paper(2, 5, topics=[ROBOTICS]), paper(3, 50, topics=[ROBOTICS]), paper(4, 1)]
    picks = run(candidates, Interests(topic_ids=frozenset([ROBOTICS])), featured=[paper(9, 0)])
    assert picks == [
        (9, FEATURED),
        (3, Reason(Kind.TOPIC, "Robotics", 1.0)),
        (2, Reason(Kind.TOPIC, "Robotics", 1.0)),
        (1, Reason(Kind.TRENDING, "", 500.0)),
        (4, Reason(Kind.TRENDING, "", 1.0)),
    ]


def test_upvotes_then_recency_break_ties():
    candidates = [paper(1, 10, day=1), paper(2, 10, day=3), paper(3, 20, day=2)]
    assert [p for p, _ in run(candidates)] == [3, 2, 1]


def test_keywords_match_whole_words_and_say_which():
    candidates = [paper(1, text="post-training quantization of llms"), paper(2, text="quantizationless methods")]
    picks = run(candidates, Interests(keywords=("quantization",)))
    assert picks[0] == (1, Reason(Kind.KEYWORD, "quantization", 0.8))
    assert picks[1] == (2, Reason(Kind.TRENDING, "", 0.0))


def test_topic_reason_wins_over_keyword_reason():
    picks = run([paper(1, topics=[SECURITY], text="jamming attacks")], Interests(frozenset([SECURITY]), ("jamming",)))
    assert picks == [(1, Reason(Kind.TOPIC, "Security", 1.0))]


def test_never_a_paper_already_received_and_nothing_new_means_no_digest():
    candidates = [paper(1), paper(2)]
    assert run(candidates, featured=[paper(3)], exclude=[1, 2, 3]) == []
    assert [p for p, _ in run(candidates, exclude=[1])] == [2]


def test_a_featured_paper_is_not_repeated_below():
    assert run([paper(1, 99)], featured=[paper(1, 99)]) == [(1, FEATURED)]


def test_limits_matches_and_trending_fill():
    candidates = [paper(n, n, topics=[ROBOTICS] if n <= 12 else []) for n in range(1, 30)]
    follower = run(candidates, Interests(topic_ids=frozenset([ROBOTICS])), limit=10)
    assert len(follower) == 10 and all(r == (Kind.TOPIC, "Robotics", 1.0, "") for _, r in follower)
    few = run(candidates[:2] + candidates[20:], Interests(topic_ids=frozenset([ROBOTICS])), limit=10)
    assert len(few) == 2 + 3  # followers get at most three trending papers beside their matches
    everyone = run(candidates, limit=10)
    assert [p for p, _ in everyone] == list(range(29, 19, -1))


def test_keywords_are_quoted_as_the_subscriber_wrote_them():
    picks = run([paper(1, text="fast llm inference")], Interests(keywords=("LLM",)))
    assert picks == [(1, Reason(Kind.KEYWORD, "LLM", 0.8))]
