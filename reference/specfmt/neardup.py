"""Near-duplicate prompts: the one test of "the same prompt, or nearly a copy of it" that keeps evaluation prompts
out of training (specfmt.evalsets) and repeated prompts out of a synthesized set (specfmt.train.synth).

Two texts are compared by the word 3-grams of their normalized form (Unicode NFKC, lower case, every run of
characters that are neither letters nor digits one space), as near-duplicate detection in web-scale corpora does
(Broder 1997; Lee et al. 2022 deduplicate training data with n-gram overlap). They are near copies when
- their normalized texts are equal, or
- the Jaccard similarity of their 3-gram sets is at least JACCARD, or
- the smaller set has at least MIN_CONTAINED 3-grams and CONTAINED of them are in the other (one text quotes the
  other inside more words).
Two prompts of one template that differ in a single subject word (`Explain the Python topic 'for'` and `... 'if'`)
are not near copies: they share 4 of their 10 distinct 3-grams. Torch-free.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

N = 3  # words per shingle
JACCARD = 0.6
CONTAINED = 0.8
MIN_CONTAINED = 8
_NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Lower case, NFKC, and single spaces between runs of letters and digits."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def shingles(text: str) -> frozenset[str]:
    """The word 3-grams of the normalized text (a text of fewer than 3 words is one shingle)."""
    words = normalize(text).split()
    if len(words) < N:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i:i + N]) for i in range(len(words) - N + 1))


def near(a: frozenset[str], b: frozenset[str], shared: int) -> bool:
    """Whether two shingle sets that share `shared` shingles are near copies (the module's rule)."""
    if not a or not b:
        return False
    if shared / (len(a) + len(b) - shared) >= JACCARD:
        return True
    small = min(len(a), len(b))
    return small >= MIN_CONTAINED and shared / small >= CONTAINED


class NearIndex:
    """Texts indexed by their shingles, to find a near copy of a new text among them without comparing it with
    every one."""

    def __init__(self, texts: list[str] = ()) -> None:
        self.texts: list[str] = []
        self._sets: list[frozenset[str]] = []
        self._exact: dict[str, int] = {}
        self._postings: dict[str, list[int]] = {}
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        n = len(self.texts)
        self.texts.append(text)
        self._sets.append(shingles(text))
        self._exact.setdefault(normalize(text), n)
        for s in self._sets[n]:
            self._postings.setdefault(s, []).append(n)

    def match(self, text: str) -> str | None:
        """An indexed text that `text` equals or nearly copies, or None."""
        exact = self._exact.get(normalize(text))
        if exact is not None:
            return self.texts[exact]
        mine = shingles(text)
        counts = Counter(i for s in mine for i in self._postings.get(s, ()))
        for i, shared in counts.most_common():
            if near(mine, self._sets[i], shared):
                return self.texts[i]
        return None
