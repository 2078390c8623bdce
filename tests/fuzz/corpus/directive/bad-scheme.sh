#BB stage_in source=ftp://host/x destination=$BB_JOB_DIR/x type=file
