#BB stage_in source=s3://private/x destination=$BB_JOB_DIR type=file replicas=65535
#BB cache shm=65G nvme=2T
