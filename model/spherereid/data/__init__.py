"""The input side: dataset parsers, the prepared-data manifest, image decoding, P x K sampling, transforms
and the batched input path."""
