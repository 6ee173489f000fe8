"""lsio's benchmarks: lsio side by side with its peers on data generated here."""
