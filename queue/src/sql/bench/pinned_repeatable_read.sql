-- W5: the pin's transaction keeps one snapshot from its first read to its end.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ
