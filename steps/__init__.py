"""The steps: plain functions with a thin command line each, depending on `sweeper.core` only.

A local worker calls the functions directly; Argo pods run the same code as
`python -m steps.preprocess …` and `python -m steps.train …`.
"""
