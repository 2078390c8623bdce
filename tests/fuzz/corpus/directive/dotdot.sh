#BB stage_in source=s3://datasets/a destination=$BB_JOB_DIR/../etc type=file
