"""Data sources: procedural street scenes, Cityscapes-layout splits, image folders and rosbag image topics.

Each submodule imports only what it needs (``bags`` pulls in rosbags, ``cityscapes`` pulls in cityscapesscripts
only when mapping labelIds), so importing this package is cheap.
"""
