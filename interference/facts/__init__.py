"""Facts, from a source to the tensors a model trains on: the `Fact` and its question-answer format (`fact`),
answer matching (`answers`), EntityQuestions and other datasets (`datasets`), SLiCK categorisation by what a model
knows and its cache (`knowledge`, `knowledge_cache`), the known / unknown / held-out splits (`splits`), generated new
facts with name-like or UUID subjects (`new_facts`), a real model with its categorised facts (`realdata`) and facts
tokenised for training (`examples`).

Layer 2: imports `interference.io` and `interference.models` (SLiCK asks a model), nothing above.
"""

from .fact import ANSWER_CUE, QA_INSTRUCTION, Fact, dedupe, qa_prompt, qa_target, subjects

__all__ = ["ANSWER_CUE", "QA_INSTRUCTION", "Fact", "dedupe", "qa_prompt", "qa_target", "subjects"]
