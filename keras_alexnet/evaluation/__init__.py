"""Test-time evaluation of the papers: the engine (`engine.evaluate`) running the protocols of
`pipelines.eval_protocols` (centre crop, AlexNet §4.1 ten crops, VGG §3.2 dense and multi-crop, several
scales), fusion of models by softmax averaging (AlexNet §6, VGG §4.4), and the top-1/top-5 error tables
laid out like VGG's Tables 3-6."""
