#BB cache shm=1.5T nvme=0 numa=replicate
