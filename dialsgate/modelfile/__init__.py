"""The model file: which format it is (ONNX, XGBoost, LightGBM, numeric arrays, or a pickle) and
the audit of every pickle, which never runs what the file names."""
