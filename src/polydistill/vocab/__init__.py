"""VocabReduce (Singh et al. 2023, §5): a model's vocabulary cut down to the sub-words its target languages
need. The entry points are ``plan_vocab`` and ``vocab_reduce`` in ``reduce.py``; ``sources.py`` (where the
text comes from), ``plan.py`` (what is kept), ``coverage.py`` (the report), ``tokenizer.py`` (the rebuilt
``tokenizer.json``) and ``model.py`` (the sliced tensors) are its parts. See docs/lang.md.
"""
