"""Capacity forecasters (validated fit/predict returning mean and 80/95% bands) and capacity
maths. Sees only `controlplane.domain`. Arrives with the forecasting work (issue 4).
"""
