-- What a version's runtime needs beyond its artifact and signature: for the command runtime, the program to
-- run and how many copies (the deployment's manifest); empty for ONNX files.
ALTER TABLE model_versions ADD COLUMN runtime_settings jsonb NOT NULL DEFAULT '{}'::jsonb;
