package bench

import "time"

var epoch = time.Now()

func wallNs() int64 { return int64(time.Since(epoch)) }
