"""Findings: what a results section is written from. Code prevalence overall and per group of a speaker or
document field, by the model alone (biased), the random human sample alone, and prediction-powered inference
(PPI++), with group differences; see docs/findings.md."""

from pipeline.findings.estimators import Interval, difference, human_mean, model_mean, ppi_mean
from pipeline.findings.prevalence import Findings, prevalence

__all__ = ["Findings", "Interval", "difference", "human_mean", "model_mean", "ppi_mean", "prevalence"]
