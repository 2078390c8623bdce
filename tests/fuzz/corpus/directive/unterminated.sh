#BB stage_in source="s3://unterminated destination=$BB_JOB_DIR/x type=file
