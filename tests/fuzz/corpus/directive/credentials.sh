#BB stage_in source=https://user:pw@cdn.example.org/x destination=$BB_JOB_DIR/x type=file
