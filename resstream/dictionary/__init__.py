"""Dictionary features of the residual stream: a TopK sparse crosscoder per block
(:mod:`resstream.dictionary.crosscoder`), trained on streamed activations
(:mod:`resstream.dictionary.train`), read per feature (:mod:`resstream.dictionary.science`)."""
