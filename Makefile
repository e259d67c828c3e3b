# What the project rebuilds from its own sources. `make bundled-model` after changing the default config,
# the bundled list or the model code; tests/test_bundled.py fails while the bundled model and the code disagree.

.PHONY: bundled-model

bundled-model:
	python tools/bundle_model.py
