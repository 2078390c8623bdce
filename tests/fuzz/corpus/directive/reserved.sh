#BB cache shm=1G nvme=1G capacity=10G pool=x
