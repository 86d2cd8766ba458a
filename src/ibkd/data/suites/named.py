"""Suites by name: `marvin-linzen` ships with ibkd; the others are public files fetched once
into the cache (`$IBKD_CACHE/suites/NAME/`) and verified by SHA-256 (see data/download.py).

The Linzen test set and the nonce set are CC BY-NC (colorlessgreenRNNs), so they are fetched
by their users, never shipped. URLs are pinned to one commit of each repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ibkd.data.download import cache_dir, fetch
from ibkd.data.suites.marvin_linzen import shipped_dir

COLORLESSGREEN = (
    "https://raw.githubusercontent.com/facebookresearch/colorlessgreenRNNs/"
    "00a7b1cbd6b5b837cedcb38a37962150be4f4273/data/"
)
BLIMP = (
    "https://raw.githubusercontent.com/alexwarstadt/blimp/"
    "d07303a7662f1942d70c5e2bbac7aa021c6cdbd0/data/"
)
BLIMP_PARADIGMS = (
    "adjunct_island", "anaphor_gender_agreement", "anaphor_number_agreement",
    "animate_subject_passive", "animate_subject_trans", "causative", "complex_NP_island",
    "coordinate_structure_constraint_complex_left_branch",
    "coordinate_structure_constraint_object_extraction", "determiner_noun_agreement_1",
    "determiner_noun_agreement_2", "determiner_noun_agreement_irregular_1",
    "determiner_noun_agreement_irregular_2", "determiner_noun_agreement_with_adj_2",
    "determiner_noun_agreement_with_adj_irregular_1",
    "determiner_noun_agreement_with_adj_irregular_2",
    "determiner_noun_agreement_with_adjective_1", "distractor_agreement_relational_noun",
    "distractor_agreement_relative_clause", "drop_argument", "ellipsis_n_bar_1",
    "ellipsis_n_bar_2", "existential_there_object_raising", "existential_there_quantifiers_1",
    "existential_there_quantifiers_2", "existential_there_subject_raising",
    "expletive_it_object_raising", "inchoative", "intransitive",
    "irregular_past_participle_adjectives", "irregular_past_participle_verbs",
    "irregular_plural_subject_verb_agreement_1", "irregular_plural_subject_verb_agreement_2",
    "left_branch_island_echo_question", "left_branch_island_simple_question",
    "matrix_question_npi_licensor_present", "npi_present_1", "npi_present_2",
    "only_npi_licensor_present", "only_npi_scope", "passive_1", "passive_2",
    "principle_A_c_command", "principle_A_case_1", "principle_A_case_2", "principle_A_domain_1",
    "principle_A_domain_2", "principle_A_domain_3", "principle_A_reconstruction",
    "regular_plural_subject_verb_agreement_1", "regular_plural_subject_verb_agreement_2",
    "sentential_negation_npi_licensor_present", "sentential_negation_npi_scope",
    "sentential_subject_island", "superlative_quantifiers_1", "superlative_quantifiers_2",
    "tough_vs_raising_1", "tough_vs_raising_2", "transitive", "wh_island",
    "wh_questions_object_gap", "wh_questions_subject_gap",
    "wh_questions_subject_gap_long_distance", "wh_vs_that_no_gap",
    "wh_vs_that_no_gap_long_distance", "wh_vs_that_with_gap", "wh_vs_that_with_gap_long_distance",
)  # fmt: skip
# SHA-256 of the BLiMP files checked against copies at hand (the six agreement paradigms);
# the others are pinned by their first fetch.
BLIMP_SHA256 = {
    "distractor_agreement_relational_noun.jsonl":
        "37c1553f4c6594b162256edce0f6b40bad1898b311c8aaa69605b526b6494a34",
    "distractor_agreement_relative_clause.jsonl":
        "854728b6db8f23f12583f7332b654835351eaedb50783e6f2a3bf6c101b8c422",
    "irregular_plural_subject_verb_agreement_1.jsonl":
        "0066174143671bffa54232d89254d14221afab666273edfefdfb625fbb75e226",
    "irregular_plural_subject_verb_agreement_2.jsonl":
        "9b22db814e7b7251f4abafe8beb9616f2f46eaa58f7cdb701cbc737cc8f1a124",
    "regular_plural_subject_verb_agreement_1.jsonl":
        "1a18d94062c8e792c0a200a3b00dff0e051a92bb084c05e9b5e5c73bee32a620",
    "regular_plural_subject_verb_agreement_2.jsonl":
        "e5b4668811e63b00ac4c9569cb9553281a39c21df43256905ad78e59ae24942c",
}  # fmt: skip


@dataclass(frozen=True)
class Remote:
    """A suite made of public files: `files` maps each file name to its URL, `entry` is what
    the reader is given inside the cache folder ("" for the folder itself), `sha256` the
    content digests known in advance (by file name)."""

    name: str
    fmt: str
    files: dict[str, str]
    entry: str
    licence: str
    source: str
    sha256: dict[str, str] = field(default_factory=dict)


REMOTE = {
    r.name: r
    for r in (
        Remote(
            "linzen-test", "colorlessgreen",
            {f"subj_agr_filtered.{s}": f"{COLORLESSGREEN}linzen_testset/subj_agr_filtered.{s}"
             for s in ("text", "gold")},
            "subj_agr_filtered.gold", "CC BY-NC 4.0",
            "Linzen et al. (2016) test sentences as used by Gulordava et al. (2018)",
        ),
        Remote(
            "gulordava-nonce", "colorlessgreen",
            {f"generated.{s}": f"{COLORLESSGREEN}agreement/English/generated.{s}"
             for s in ("text", "gold", "tab")},
            "generated.gold", "CC BY-NC 4.0", "Gulordava et al. (2018) English nonce sentences",
        ),
        Remote(
            "blimp", "blimp", {f"{p}.jsonl": f"{BLIMP}{p}.jsonl" for p in BLIMP_PARADIGMS},
            "", "CC BY 4.0", "Warstadt et al. (2020), all 67 paradigms", BLIMP_SHA256,
        ),
    )
}  # fmt: skip
SHIPPED = {"marvin-linzen": ("marvin-linzen", shipped_dir)}
NAMES = tuple(SHIPPED) + tuple(REMOTE)


def fetch_remote(remote: Remote, folder: Path | None = None) -> Path:
    """Download what `folder` (default `$IBKD_CACHE/suites/NAME`) lacks of `remote`'s files,
    verified; returns the path to give the reader."""
    folder = folder or cache_dir("suites", remote.name)
    for name, url in remote.files.items():
        fetch([url], folder / name, remote.sha256.get(name),
              hint=f" ({remote.source}; or pass the files' path to --suite)")  # fmt: skip
    return folder / remote.entry if remote.entry else folder


def resolve(name: str) -> tuple[Path, str]:
    """(path, format) of a named suite, fetching a remote one into the cache when needed."""
    if name in SHIPPED:
        fmt, where = SHIPPED[name]
        return where(), fmt
    remote = REMOTE[name]
    return fetch_remote(remote), remote.fmt
