"""Client wire protocols: parse into the canonical form, render back, stream."""
