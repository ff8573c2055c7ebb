"""The hostile-input suite of issue 11: generated bad values and failures, end to end."""
