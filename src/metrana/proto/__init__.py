"""Protobuf messages of the ingestion endpoint (generated from ``metrana.proto``)."""

from .metrana_pb2 import IngestBatch, IngestResponse, SeriesBatch

__all__ = ["IngestBatch", "IngestResponse", "SeriesBatch"]
