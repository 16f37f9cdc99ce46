"""The V2 inference protocol as DIALS speaks it: request bodies built from the template, decoded
answers, and the malformed requests outside the contract."""
