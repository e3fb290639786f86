"""Datasets: corpus / queries / qrels readers, the embedded stdlib code-search set, batching."""

from hnm.data.dataset import RetrievalData, TrainPairs

__all__ = ["RetrievalData", "TrainPairs"]
