"""Where and how computation runs: the machine, its cores, the device and the precision."""
