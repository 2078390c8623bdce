#!/bin/sh
#BB_LUA stage_in x=1
  #BB indented
#BB stage_in source=file:///lustre/d destination=$BB_JOB_DIR/d type=directory
echo
#BB cache shm=1G nvme=1G
