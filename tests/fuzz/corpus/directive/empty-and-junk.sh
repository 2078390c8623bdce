#BB
#BB stage-in
#BB stage_in =x
