#BB stage_out source=$BB_JOB_DIR/out destination=s3://datasets/%u/%j/100%%/ type=directory
