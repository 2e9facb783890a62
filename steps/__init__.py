"""Step entry points: plain functions with a thin CLI each.

The local worker pool calls these functions directly; Argo pods run the same code as
`python -m steps.preprocess …` and `python -m steps.train …`.
"""
