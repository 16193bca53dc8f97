"""A pre-rendered simulator dataset serves the same JSON as one that renders each answer."""

from __future__ import annotations

import json

from phishme_intel.simulator import Dataset


def rendered_now(dataset: Dataset, keys: list[tuple[str, int]]) -> list[bytes]:
    return [json.dumps(threat, separators=(",", ":")).encode() for threat in dataset.threats(keys)]


def test_prerendered_texts_follow_every_republication_deletion_and_addition():
    dataset = Dataset(seed=3, malware=40, phish=10, days=5, prerender=True)
    everything = sorted(dataset.live_ids())
    assert dataset.threats_json(everything) == rendered_now(dataset, everything)

    republished = dataset.republish(7)
    deleted = dataset.delete(5)
    added = dataset.add(malware=3, phish=2)

    keys = sorted(set(everything) | set(added))
    served = dataset.threats_json(keys)
    assert served == rendered_now(dataset, keys)
    assert len(served) == len(everything) - len(set(deleted)) + len(added)
    assert set(republished) - set(deleted) <= dataset.live_ids()


def test_window_search_serves_the_prerendered_texts_of_the_current_documents():
    dataset = Dataset(seed=4, malware=60, phish=15, prerender=True)
    dataset.republish(10)

    for offset in (0, 25, 50):
        total, texts = dataset.search_json(0, 2**41, "all", offset, 25)
        assert (total, texts) == (75, [json.dumps(threat, separators=(",", ":")).encode()
                                       for threat in dataset.search(0, 2**41, "all", offset, 25)[1]])
