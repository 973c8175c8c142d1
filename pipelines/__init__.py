"""Data preparation (TFRecord shards, dataset statistics) and the tf.data input pipelines."""
