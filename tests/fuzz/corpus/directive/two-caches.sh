#BB cache shm=1G nvme=1G
#BB cache shm=2G nvme=2G
