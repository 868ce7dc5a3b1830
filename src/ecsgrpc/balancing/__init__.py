"""Client-side load balancing: subchannels, pickers, outlier detection, retries."""
