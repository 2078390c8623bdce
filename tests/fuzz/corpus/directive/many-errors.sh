#BB stage_in source=s3://datasets/$HOME destination=$BB_JOB_DIRX/x type=dir replicas=0 mode=x verify=md5
