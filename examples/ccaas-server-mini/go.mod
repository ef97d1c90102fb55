module example.com/imgforge/ccaas-server-mini

go 1.22

require example.com/imgforge/fakeshim v0.1.0
