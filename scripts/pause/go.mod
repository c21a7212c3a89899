module xenorchestra-ccm/pause

go 1.22
