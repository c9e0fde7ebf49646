"""Process infrastructure: start-up and host memory (``runtime``, ``hostmem``), signals
(``preemption``), the workdir's one-writer lock, accelerator facts and step costs
(``chips``, ``step_costs``), the metrics log and its plots."""
