#!/bin/bash
#SBATCH -N 4
#BB stage_in  source=s3://datasets/imagenet/train/ destination=$BB_JOB_DIR/imagenet type=directory replicas=all mode=async verify=etag include=*.JPEG exclude=*.tmp
#BB stage_in  source=https://cdn.example.org/data/shard-000.tar destination=$BB_JOB_DIR/shard-000.tar type=file
#BB stage_out source=$BB_JOB_DIR/ckpt destination=s3://datasets/runs/%j/ type=directory
#BB cache     shm=64GiB nvme=800GiB numa=local

srun python train.py
