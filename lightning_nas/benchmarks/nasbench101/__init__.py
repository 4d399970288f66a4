"""NAS-Bench-101's official data without TensorFlow: TFRecord framing, the metrics protobuf, a columnar cache."""
from lightning_nas.benchmarks.nasbench101.cache import EPOCH_BUDGETS, NB101Benchmark, convert
from lightning_nas.benchmarks.nasbench101.records import METRICS, encode_row, parse_row
from lightning_nas.benchmarks.nasbench101.tfrecord import TFRecordError, crc32c, masked_crc32c, read_records, write_record

__all__ = ["EPOCH_BUDGETS", "METRICS", "NB101Benchmark", "TFRecordError", "convert", "crc32c", "encode_row",
           "masked_crc32c", "parse_row", "read_records", "write_record"]
