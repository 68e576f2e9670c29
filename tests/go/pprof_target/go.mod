module ferro.test/pprof_target

go 1.19
