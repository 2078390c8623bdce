#BB stage_in source="s3://datasets/my data/x \"q\"" destination='${BB_JOB_DIR}/my data' type=file replicas=3 mode=wait verify=sha256
