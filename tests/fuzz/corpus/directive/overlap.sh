#BB stage_in source=s3://datasets/1 destination=$BB_JOB_DIR/x type=directory
#BB stage_in source=s3://datasets/2 destination=$BB_JOB_DIR/x/y type=file
